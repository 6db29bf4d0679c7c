from .token_merging import (MERGE_MODES, MergeMask, TokenMerger,
                            build_token_merger, check_compression_ratio,
                            grid_assignment, merge_tokens, plan_merge_grid,
                            unmerge_tokens)

__all__ = ['MERGE_MODES', 'MergeMask', 'TokenMerger', 'build_token_merger',
           'check_compression_ratio',
           'grid_assignment', 'merge_tokens', 'plan_merge_grid',
           'unmerge_tokens']
