"""A study: one command measures accuracy, localisation and attention over a whole dataset (see ``engine``)."""
