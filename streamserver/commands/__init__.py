"""Command-line commands beyond ``serve``: the Plivo REST commands and the demo.

- ``streamserver call``: place a call (answer URL of your own, or the control app's stream)
- ``streamserver streams list|start|stop``: audio streams of a live call
- ``streamserver recordings list|download|delete``
- ``streamserver demo``: server, control app and emulator in one process, a few calls, a summary

Each module has ``add_parser(subparsers)``; the parsers' ``func`` returns an exit code
(0 done, 1 the API or the network failed, 2 bad arguments or configuration).
"""
