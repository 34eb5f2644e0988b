"""How the workflow meets its user: checks of the command line, the configuration and the node."""
