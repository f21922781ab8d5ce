"""Knowledge: what is known before any model runs — the 1000 classes and their validation labels, the WordNet
subgraph, the superclasses and overlapping (collapsed) class pairs, ReaL co-occurrences, the experts' reviews,
the paper's model zoo, and the verified fetch of the public files they come from.

The bottom layer: modules here import only each other and `analysis.paths` / `analysis.errors`.
"""
