"""The thesis' feature-level ensemble network (section 4.3) and its output-level baselines.

transform   independent (per-member PCA) and global transformation blocks
network     optional per-member projection, SimpleNet-style discriminator, truncated l1 loss
adapter     FeatureEnsemble: the whole network behind the Adapter contract
baselines   output-level ensembles: mean of calibrated scores, CAWPE, normalised map average
members     the member fit cache (local folder and MLflow artifact)
scoring     one category scored by the members, the output-level ensembles and the network
comparison  the comparison table (rows per approach and category, Markdown)
run         the ``orchestrate ensemble`` job: member-fit trials, then ensemble trials
"""
