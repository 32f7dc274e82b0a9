"""Built-in stream handlers, each registered under the ``streamserver.handlers`` entry points."""
