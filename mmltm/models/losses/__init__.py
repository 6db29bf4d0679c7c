from .ib_loss import (VariationalIBLoss, accumulate_q, cluster_scores,
                      finalize_q, flatten_images, kmeans, l2_normalize,
                      labels_to_weights, mutual_information)

__all__ = [
    'VariationalIBLoss', 'accumulate_q', 'cluster_scores', 'finalize_q',
    'flatten_images', 'kmeans', 'l2_normalize', 'labels_to_weights',
    'mutual_information'
]
