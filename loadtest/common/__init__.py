"""What the Locust profile and the benchmark share: the scripted customer, tables, metrics text."""
