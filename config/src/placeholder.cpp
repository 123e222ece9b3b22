// placeholder, removed once config has sources
