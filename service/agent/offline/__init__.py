"""The offline model: deterministic Spanish/English booking dialogue, no network."""
