"""Code every Autoloader service shares: settings, topics, schemas, models, migrations."""
