"""Where dagml keeps things: results (SQL, ``results``) and artifacts (files, ``artifacts``)."""
