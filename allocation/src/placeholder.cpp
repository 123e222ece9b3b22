// placeholder, removed once allocation has sources
