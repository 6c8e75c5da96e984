"""The package as the image installs it: a built wheel in a fresh venv, run as a non-root user."""
