"""The ``expnet`` command line; one module per subcommand."""
