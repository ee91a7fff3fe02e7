"""One torch thread for these tests: their tensors are small, and on a busy 2-core machine two threads waiting on
each other made the lesion test ten times slower (55 s instead of 5 s)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
