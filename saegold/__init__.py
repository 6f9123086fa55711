"""saegold: the one name this project installs.

The code lives in the repository's top-level folders ``store/``, ``engine/`` and ``tui/`` (the
project's fixed layout); ``saegold/store``, ``saegold/engine`` and ``saegold/tui`` are symbolic links
to them, so the installed wheel claims only ``saegold`` in site-packages and every import reads
``saegold.store``, ``saegold.engine`` or ``saegold.tui``."""
