"""Request and response models and the rules every body obeys, shared by api and runs."""
