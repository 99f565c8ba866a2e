# gunicorn settings for hmacfs, derived from the hmacfs settings
# (HMACFS_CONFIG, default etc/hmacfs.toml, and the environment).
#
# `hmacfs serve` reads this file when it exists (handing over the settings it
# already loaded); you can also run it directly:
#     gunicorn -c etc/gunicorn.conf.py wsgi:app
# Anything assigned below the last line overrides the derived value, e.g.
#     workers = 8
from hmacfs.config import load_settings
from hmacfs.serving import gunicorn_options, prepare_metrics_dir

prepare_metrics_dir()
globals().update(gunicorn_options(globals().get("hmacfs_settings") or load_settings()))
