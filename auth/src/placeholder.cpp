// placeholder, removed once auth has sources
