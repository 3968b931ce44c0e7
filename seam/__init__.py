"""The engine's seam: the Pulumi engine's side of the provider protocol, for the tests and the benchmark.

``seam.engine`` starts the Pulumi SDK's real provider server (``python -u -m pulumi.dynamic``) and sends it what the
engine sends, in any order and interleaving a caller needs (which the real CLI cannot force), and captures a
program's registrations under ``pulumi.runtime.set_mocks``. It lives outside ``tests/`` because the benchmark, a
product path, measures the provider through it too. It is not part of the ``kms_connection`` package.
"""
