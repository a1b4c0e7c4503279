"""The `marketrank` command: the admin and scripting front beside bot/."""
