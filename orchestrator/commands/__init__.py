"""One module per CLI command that is not ``launch``: each reads a study (or a
config) and returns or prints its answer. ``orchestrator/cli.py`` only parses the
command line and calls into these; ``xorch launch`` imports none of them."""
