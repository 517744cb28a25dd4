"""Views of attention weights, drawn offline: PNG heatmaps (PIL) and a self-contained HTML page.
Plain numpy/PIL/HTML: no Caikit imports here."""
