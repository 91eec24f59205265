"""The booking domain (services, slots, codes) and its two databases."""
