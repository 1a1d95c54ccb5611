"""Test/demo harness: the Asterisk 22 sandbox (Debian sid chroot) and SIPp runners.

Never imported by the engine. See ``harness.sandbox``, ``harness.ports``, ``harness.sipp``.
"""
