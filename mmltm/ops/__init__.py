from . import fused
from .token_merging import (MERGE_MODES, MergeMask, TokenMerger,
                            build_token_merger, check_compression_ratio,
                            check_merge_mode,
                            grid_assignment, merge_tokens, plan_merge_grid,
                            unmerge_add, unmerge_tokens)

__all__ = ['MERGE_MODES', 'MergeMask', 'TokenMerger', 'build_token_merger', 'fused',
           'check_compression_ratio', 'check_merge_mode',
           'grid_assignment', 'merge_tokens', 'plan_merge_grid',
           'unmerge_add', 'unmerge_tokens']
