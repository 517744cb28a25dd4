"""What every trainer uses: recipes, the one loop, the optimizer, data-parallel ranks, the
runtime's trainer, frozen layers, reading training data."""
