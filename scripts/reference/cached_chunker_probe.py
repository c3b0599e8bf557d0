"""Would the noun-phrase chunker hold its F1 on cached (frozen) encoder states? (issue 14, item 6)

A probe, not a stage: MiniLM's hidden states of every layer, first piece per word, computed once for the
CoNLL-2000 sentences; a learned scalar mix, a two-layer BiLSTM (256 per direction) and a softmax over
B/I/O NP tags, Adam 1e-3, the epoch chosen on a 10% held-out share of the training sentences (as the
`chunker` stage does), I-NP after O decoded as B-NP (as `text::np::decode` does). NP-span F1 on the
CoNLL-2000 test set is the figure to set against the fine-tuned chunker's (README, "Noun phrases").
No tweet-style augmentation: it draws new words every epoch, which is what a cache cannot hold.

    .venv-ref/bin/python scripts/reference/cached_chunker_probe.py --data ../shared/data --model models/minilm-l6
"""

import argparse
import random
import time

import _common  # noqa: F401  (sets the offline environment first)
from _common import load_bert, load_tokenizer


def read_conll2000(path):
    sentences, words, tags = [], [], []
    for line in open(path, encoding="utf-8"):
        parts = line.split()
        if not parts:
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        words.append(parts[0])
        chunk = parts[-1]
        tags.append({"B-NP": 1, "I-NP": 2}.get(chunk, 0))
    if words:
        sentences.append((words, tags))
    return sentences


def spans(tags):
    """NP spans of a B/I/O (1/2/0) sequence, an I after O read as B."""
    out, start = set(), None
    for i, t in enumerate(list(tags) + [0]):
        if t == 1 or (t == 2 and start is None) or t == 0:
            if start is not None:
                out.add((start, i))
                start = None
            if t in (1, 2):
                start = i
    return out


def f1(gold, pred):
    g = sum(len(s) for s in gold)
    p = sum(len(s) for s in pred)
    c = sum(len(a & b) for a, b in zip(gold, pred))
    return 0.0 if c == 0 else 200 * c / (g + p)


def main():
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    random.seed(args.seed)

    train = read_conll2000(f"{args.data}/conll2000/train.txt")
    test = read_conll2000(f"{args.data}/conll2000/test.txt")
    random.shuffle(train)
    n_dev = len(train) // 10
    dev, train = train[:n_dev], train[n_dev:]

    tok = load_tokenizer(args.model)
    bert = load_bert(args.model)
    t0 = time.time()

    def encode(sentences):
        out = []
        with torch.no_grad():
            for i in range(0, len(sentences), 64):
                batch = [w for w, _ in sentences[i : i + 64]]
                enc = tok(batch, is_split_into_words=True, truncation=True, max_length=256,
                          padding=True, return_tensors="pt")
                hidden = torch.stack(bert(**enc, output_hidden_states=True).hidden_states, 1)
                for b, words in enumerate(batch):
                    ids = enc.word_ids(b)
                    first = [ids.index(w) for w in range(len(words))]
                    out.append(hidden[b, :, first].transpose(0, 1).to(torch.float16))  # [words, layers, h]
        return out

    x_train, x_dev, x_test = encode(train), encode(dev), encode(test)
    encode_s = time.time() - t0
    print(f"encoded {len(x_train) + len(x_dev) + len(x_test)} sentences in {encode_s:.0f} s")
    layers, hidden = x_train[0].shape[1:]

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mix = torch.nn.Parameter(torch.zeros(layers))
            self.gamma = torch.nn.Parameter(torch.ones(()))
            self.drop = torch.nn.Dropout(0.3)
            self.lstm = torch.nn.LSTM(hidden, 256, num_layers=2, bidirectional=True, batch_first=True,
                                      dropout=0.3)
            self.out = torch.nn.Linear(512, 3)

        def forward(self, x):  # [batch, words, layers, hidden]
            x = self.gamma * (x * self.mix.softmax(0)[:, None]).sum(2)
            return self.out(self.drop(self.lstm(self.drop(x))[0]))

    def pad(xs):
        return torch.nn.utils.rnn.pad_sequence([x.float() for x in xs], batch_first=True)

    def predict(model, xs):
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(xs), 128):
                chunk = xs[i : i + 128]
                tags = model(pad(chunk)).argmax(-1)
                out += [tags[b, : len(x)].tolist() for b, x in enumerate(chunk)]
        return out

    model = Head()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t1 = time.time()
    best = (-1.0, 0, None)
    dev_curve = []
    order = list(range(len(x_train)))
    for epoch in range(1, args.epochs + 1):
        model.train()
        random.shuffle(order)
        for i in range(0, len(order), 32):
            idx = order[i : i + 32]
            x = pad([x_train[j] for j in idx])
            y = torch.nn.utils.rnn.pad_sequence([torch.tensor(train[j][1]) for j in idx], batch_first=True,
                                                padding_value=-100)
            loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 3), y.reshape(-1), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
        dev_f1 = f1([spans(t) for _, t in dev], [spans(t) for t in predict(model, x_dev)])
        dev_curve.append(round(dev_f1, 2))
        print(f"epoch {epoch}: dev F1 {dev_f1:.2f} ({time.time() - t1:.0f} s)")
        if dev_f1 > best[0]:
            best = (dev_f1, epoch, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    test_f1 = f1([spans(t) for _, t in test], [spans(t) for t in predict(model, x_test)])
    print(f"train {len(train)} dev {len(dev)} test {len(test)} sentences; layers {layers}")
    print(f"dev F1 per epoch {dev_curve}; kept epoch {best[1]}")
    print(f"test NP F1 {test_f1:.2f}; encoding {encode_s:.0f} s, training {time.time() - t1:.0f} s")


if __name__ == "__main__":
    main()
