"""Translate a test split (or any folder) with a trained model and write an HTML page of the results.

    python test.py --dataroot ./datasets/horse2zebra --name h2z --model sc
    python test.py --dataroot ./my_photos --name h2z --model sc --dataset_mode single --preprocess none
    python test.py --dataroot ./datasets/horse2zebra/testA --name horse2zebra_pretrained --model test --no_dropout

Results: results/<name>/<phase>_<epoch>/index.html and images/<label>/<input name>.png. The model is loaded and
run through the inference package's one loader and loop (inference/translator.py; ``--model test``: CycleGAN's
spelling for one pretrained ``latest_net_G.pth``).
"""

import os

from tqdm import tqdm

from data import create_dataset
from models import batch_extras
from options.test_options import TestOptions
from inference import Translator
from util.errors import run_cli
from util.html import HTML
from util.image_io import save_image


def main() -> None:
    # Options, data, model.
    opt = TestOptions().parse()
    dataset = create_dataset(opt, extras=batch_extras(opt))
    translator = Translator.from_options(opt)
    web_dir = os.path.join(opt.results_dir, opt.name, f"{opt.phase}_{opt.epoch}")
    page = HTML(web_dir, f"Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {opt.epoch}")
    limit = opt.num_test if opt.num_test > 0 else len(dataset)

    # Translate and save, one row per input image.
    done = 0
    progress = tqdm(total=min(limit, len(dataset)), desc="test", unit="image")
    for result in translator.run_dataset(dataset, limit):
        name = os.path.splitext(os.path.basename(result.path))[0]
        links = []
        for label, image in result.visuals.items():
            link = os.path.join(label, f"{name}.png")
            save_image(image, os.path.join(page.get_image_dir(), link), aspect_ratio=opt.aspect_ratio)
            links.append(link)
        page.add_header(name)
        page.add_images(links, list(result.visuals), links, width=opt.display_winsize)
        done += 1
        progress.update()
    progress.close()
    page.save()
    index = os.path.join(web_dir, "index.html")
    if done < len(dataset):  # --num_test cut the split: say so (CycleGAN's default of 50 drops images silently)
        print(f"translated {done} of {len(dataset)} images (--num_test 0 for all): {index}")
    else:
        print(f"translated {done} images: {index}")


if __name__ == "__main__":
    run_cli(main)
