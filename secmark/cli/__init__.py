"""The ``secmark`` command line: one sub-command module per role's task."""
