"""Quality figures: Frechet distance and the classification report."""
