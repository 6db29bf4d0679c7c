from .ib_linear_head import IBLinearClsHead

__all__ = ['IBLinearClsHead']
