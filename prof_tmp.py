import time, torch, torch.nn.functional as F
from trainer import data, models
from omegaconf import OmegaConf
torch.manual_seed(0)
cfg = OmegaConf.create(dict(name='fashion_mnist', root='/tmp/sl_data', download=False, normalize=True))
tr, te = data.load(cfg, torch.device('cpu'))
m = models.LeNet(); opt = torch.optim.SGD(m.parameters(), lr=0.3)
g = torch.Generator().manual_seed(0)
for cl in [False, True]:
    m = models.LeNet().to(memory_format=torch.channels_last if cl else torch.contiguous_format); opt = torch.optim.SGD(m.parameters(), lr=0.3)
    tr.memory_format = torch.channels_last if cl else torch.contiguous_format
    for rep in range(2):
        t = time.perf_counter(); tb = 0
        for x, y in tr.batches(256, g):
            t0=time.perf_counter()
            out = m(x); loss = F.cross_entropy(out, y); opt.zero_grad(); loss.backward(); opt.step()
            tb += time.perf_counter()-t0
        print('channels_last', cl, 'epoch', time.perf_counter() - t, 'compute', tb)
