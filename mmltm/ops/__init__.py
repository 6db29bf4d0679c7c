from .token_merging import (MergeMask, TokenMerger, check_compression_ratio,
                            grid_assignment, merge_tokens, plan_merge_grid,
                            unmerge_tokens)

__all__ = ['MergeMask', 'TokenMerger', 'check_compression_ratio',
           'grid_assignment', 'merge_tokens', 'plan_merge_grid',
           'unmerge_tokens']
