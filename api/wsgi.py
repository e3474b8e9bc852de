"""WSGI entry for gunicorn (service mode): ``gunicorn 'api.wsgi:app'``. Settings are built here."""

from api import create_app
from constellate import jsonlog
from constellate.config import get_settings

jsonlog.configure()
app = create_app(get_settings())
