"""Serve the kms-connection provider plugin: the engine runs ``python -u <this folder> <engine address>``."""

from kms_connection_plugin.plugin import main

if __name__ == "__main__":
    main()
