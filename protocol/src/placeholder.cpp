// placeholder, removed once protocol has sources
