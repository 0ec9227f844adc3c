"""ProductPage: a product page URL → the brief's product facts and photo (see page.py, extract.py)."""
