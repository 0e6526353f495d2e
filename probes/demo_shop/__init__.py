"""The bundled demo shop: a small real site to probe when the user has none yet."""
