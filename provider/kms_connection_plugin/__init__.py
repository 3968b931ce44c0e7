"""The kms-connection resource provider plugin (see ``plugin.py``); ``provider/__main__.py`` serves it."""
