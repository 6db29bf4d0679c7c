from .checkpoint_utils import (is_token_merger_key, load_backbone_state_dict,
                               resize_relative_position_tables)

__all__ = ['is_token_merger_key', 'load_backbone_state_dict',
           'resize_relative_position_tables']
