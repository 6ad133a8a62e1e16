"""Layers for spiking networks. Public names: :class:`TimeDistributed`, :func:`fold_time`, :func:`unfold_time`."""

from neuroflow.layers.time_distributed import TimeDistributed, fold_time, unfold_time

__all__ = ["TimeDistributed", "fold_time", "unfold_time"]
from neuroflow.layers.repconv import RepConv
from neuroflow.layers.spike_attention import SpikeDrivenSelfAttention, merge_heads, sdsa_v1_mask, sdsa_v2, split_heads
from neuroflow.layers.spikeformer_blocks import ConvBlock, Downsampling, SepConv, SpikeMLP, TransformerBlock, reparameterize

__all__ += ["RepConv", "SpikeDrivenSelfAttention", "merge_heads", "sdsa_v1_mask", "sdsa_v2", "split_heads"]
__all__ += ["ConvBlock", "Downsampling", "SepConv", "SpikeMLP", "TransformerBlock", "reparameterize"]
