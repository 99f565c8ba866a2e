"""HTTP adapters (Flask blueprints): parse, authorise, call one service, serialise."""
