// placeholder, removed once server has sources
