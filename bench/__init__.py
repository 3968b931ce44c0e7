"""``python -m bench``: the benchmark of kms-connection against the local KMS emulator.

Every measurement goes through the SDK's real provider server (``python -u -m pulumi.dynamic``, driven by
``seam.engine``) and counts KMS calls from the emulator's call log. See ``bench/README.md``.

This module imports nothing on purpose: ``bench.noop_provider`` is unpickled inside a provider server, and
its cold start is the baseline of the overhead measure.
"""
