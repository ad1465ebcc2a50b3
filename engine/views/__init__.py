"""What the page reads and draws: the gallery, the map, the overlays over images and the palette."""
