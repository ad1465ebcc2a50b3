"""Reading and writing files safely: images and thumbnails, content hashes, the files a person hands in, CSV cells."""
