from .ib_image import IBImageClassifier

__all__ = ['IBImageClassifier']
