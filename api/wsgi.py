"""WSGI entry for gunicorn (service mode): ``gunicorn 'api.wsgi:app'``. Settings are built here.

Each worker loads the encoder and compiles its query models before it takes a request (made on
first use, the first searches waited for them). gunicorn's ``--timeout`` must cover that load
(compose gives 120 s; 7.7-10.3 s measured), and ``--preload`` must not be used: the encoder's
OpenVINO threads would not survive the fork.
"""

from api import create_app
from constellate import jsonlog
from constellate.config import get_settings
from constellate.embedding import embedder_for

jsonlog.configure()
settings = get_settings()
app = create_app(settings, embedder=embedder_for(settings))
