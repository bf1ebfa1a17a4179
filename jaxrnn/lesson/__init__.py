"""The lesson's app: the ``jaxrnn`` CLI, one exercise per subcommand, plots and the report."""
