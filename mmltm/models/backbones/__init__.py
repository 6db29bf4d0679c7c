from .efficientvit import EfficientViT
from .ltm_efficientvit import LTMEfficientViT
from .ltm_mobilevit import LTMMobileViT
from .ltm_swin import LTMSwinTransformer
from .ltm_vit import LTMVisionTransformer

__all__ = ['LTMSwinTransformer', 'LTMVisionTransformer', 'LTMMobileViT',
           'EfficientViT', 'LTMEfficientViT']
