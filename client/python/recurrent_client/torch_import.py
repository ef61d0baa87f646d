"""Turns a PyTorch recurrent network into a recurrentd model artifact. Needs `torch`.

The engine uses PyTorch's own parameter names, shapes and gate order (core/parameters.h): an
``nn.LSTM`` (gates i,f,g,o), ``nn.GRU`` (r,z,n) or ``nn.RNN`` plus an ``nn.Linear`` head called
``head`` map one to one onto the artifact's tensors, with no reordering::

    weight_ih_l{k}[_reverse]  [G*H, I_k]     weight_hh_l{k}[_reverse]  [G*H, H]
    bias_ih_l{k}[_reverse]    [G*H]          bias_hh_l{k}[_reverse]    [G*H]
    head.weight               [O, D*H]       head.bias                 [O]

``batch_first`` does not matter (the weights are the same either way); dropout only acts in
training. The server takes one [steps, input_size] list per sequence.

    lstm = nn.LSTM(3, 16, num_layers=2, batch_first=True)
    head = nn.Linear(16, 1)
    client.import_artifact("my-lstm", artifact_from_torch(lstm, head))
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
from torch import nn

from recurrent_client import artifact as artifact_format
from recurrent_client._stubs import model_pb2

_HEAD_MODES = {"per_step": model_pb2.HEAD_MODE_PER_STEP, "last_step": model_pb2.HEAD_MODE_LAST_STEP}
_LOSSES = {"mse": model_pb2.LOSS_TYPE_MSE, "cross_entropy": model_pb2.LOSS_TYPE_CROSS_ENTROPY}


def _cell_type(rnn: nn.RNNBase) -> int:
    # nn.LSTM and nn.GRU subclass nn.RNNBase, not nn.RNN, so the order of these checks is free.
    if isinstance(rnn, nn.LSTM):
        if rnn.proj_size != 0:
            raise ValueError("LSTM projections (proj_size > 0) have no recurrentd equivalent")
        return model_pb2.CELL_TYPE_LSTM
    if isinstance(rnn, nn.GRU):
        return model_pb2.CELL_TYPE_GRU
    if isinstance(rnn, nn.RNN):
        return {"tanh": model_pb2.CELL_TYPE_RNN_TANH,
                "relu": model_pb2.CELL_TYPE_RNN_RELU}[rnn.nonlinearity]
    raise TypeError(f"expected nn.LSTM, nn.GRU or nn.RNN, got {type(rnn).__name__}")


def _num_gates(cell: int) -> int:
    return {model_pb2.CELL_TYPE_LSTM: 4, model_pb2.CELL_TYPE_GRU: 3}.get(cell, 1)


def model_spec_from_torch(rnn: nn.RNNBase, head: nn.Linear, *, head_mode: str = "per_step",
                          loss: str = "mse") -> model_pb2.ModelSpec:
    """The ModelSpec that describes `rnn` + `head`. `head_mode` is "per_step" (the head runs on
    every timestep) or "last_step" (on the last one only); `loss` is "mse" or "cross_entropy"
    (it only matters for fine-tuning on the server)."""
    if head_mode not in _HEAD_MODES:
        raise ValueError(f"head_mode must be one of {sorted(_HEAD_MODES)}, got {head_mode!r}")
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {sorted(_LOSSES)}, got {loss!r}")
    if not isinstance(head, nn.Linear):
        raise TypeError(f"the head must be an nn.Linear, got {type(head).__name__}")
    cell = _cell_type(rnn)
    directions = 2 if rnn.bidirectional else 1
    if head.in_features != directions * rnn.hidden_size:
        raise ValueError(
            f"the head takes {head.in_features} features but the network's top layer gives "
            f"{directions} x {rnn.hidden_size} = {directions * rnn.hidden_size}")
    return model_pb2.ModelSpec(
        cell=cell, input_size=rnn.input_size, hidden_size=rnn.hidden_size,
        num_layers=rnn.num_layers, bidirectional=rnn.bidirectional,
        head=_HEAD_MODES[head_mode], output_size=head.out_features, loss=_LOSSES[loss])


def _tensor(name: str, shape: Sequence[int],
            value: Optional[torch.Tensor]) -> model_pb2.NamedTensor:
    """A NamedTensor of `shape`; `value` None means zeros (a module built with bias=False)."""
    if value is None:
        values = [0.0] * int(torch.Size(shape).numel())
    else:
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {tuple(shape)}")
        values = value.detach().to(device="cpu", dtype=torch.float32).contiguous().view(-1).tolist()
    return model_pb2.NamedTensor(name=name, shape=list(shape), values=values)


def artifact_from_torch(rnn: nn.RNNBase, head: nn.Linear, *, head_mode: str = "per_step",
                        loss: str = "mse", labels: Optional[Mapping[str, str]] = None) -> bytes:
    """The artifact file bytes of `rnn` + `head`, ready for Client.import_artifact.

    Tensors are written in the engine's canonical order (layer by layer, forward before reverse;
    weight_ih, weight_hh, bias_ih, bias_hh; then the head) as float32. No normalization is
    stored: the server feeds inputs to the network as given and returns the head's raw outputs,
    exactly as `torch_forward` computes them.
    """
    spec = model_spec_from_torch(rnn, head, head_mode=head_mode, loss=loss)
    state = dict(rnn.state_dict())
    gate_rows = _num_gates(spec.cell) * spec.hidden_size
    directions = 2 if spec.bidirectional else 1
    result = model_pb2.ModelArtifact(spec=spec, labels=labels or {})
    for layer in range(spec.num_layers):
        layer_input = spec.input_size if layer == 0 else directions * spec.hidden_size
        for reverse in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if reverse else "")
            for kind, shape in (("weight_ih", [gate_rows, layer_input]),
                                ("weight_hh", [gate_rows, spec.hidden_size]),
                                ("bias_ih", [gate_rows]),
                                ("bias_hh", [gate_rows])):
                name = kind + suffix
                if kind.startswith("weight") and name not in state:
                    raise ValueError(f"the network has no parameter {name}")
                result.tensors.append(_tensor(name, shape, state.get(name)))
    result.tensors.append(_tensor("head.weight", [spec.output_size, directions * spec.hidden_size],
                                  head.weight))
    result.tensors.append(_tensor("head.bias", [spec.output_size], head.bias))
    return artifact_format.encode_artifact(result)


def torch_forward(rnn: nn.RNNBase, head: nn.Linear, sequences: Sequence[Sequence[Sequence[float]]],
                  *, head_mode: str = "per_step") -> list[list[list[float]]]:
    """What PyTorch computes for `sequences` ([steps][input_size] each), in the layout of
    Client.predict's outputs: [steps][output_size] (per-step head) or [1][output_size]
    (last-step head) per sequence. For checking an imported model against its source."""
    outputs = []
    with torch.no_grad():
        for steps in sequences:
            x = torch.tensor([list(step) for step in steps], dtype=torch.float32)  # [T, I]
            hidden, _ = rnn(x.unsqueeze(1 if not rnn.batch_first else 0))
            hidden = hidden.squeeze(1 if not rnn.batch_first else 0)  # [T, D*H]
            if head_mode == "last_step":
                hidden = hidden[-1:]
            outputs.append(head(hidden).tolist())
    return outputs
