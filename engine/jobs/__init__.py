"""Background jobs: running, cancelling and recording them, and how long they have left."""
