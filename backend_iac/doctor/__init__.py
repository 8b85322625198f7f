"""`backend-iac doctor`: cross-check the workflows, the stack program and the service, offline.

Every fact comes from where it is defined: the workflows' YAML, the real Pulumi program evaluated
under mocks, the service's start command and settings. Nothing here is a second copy of them.
"""
