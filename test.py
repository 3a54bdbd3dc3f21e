"""Translate a test split (or any folder) with a trained model and write an HTML page of the results.

    python test.py --dataroot ./datasets/horse2zebra --name h2z --model sc
    python test.py --dataroot ./my_photos --name h2z --model sc --dataset_mode single --preprocess none
    python test.py --dataroot ./datasets/horse2zebra/testA --name horse2zebra_pretrained --model test --no_dropout

Results: results/<name>/<phase>_<epoch>/index.html and images/<label>/<input name>.png. The model is loaded as
translator.py loads it (``--model test``: CycleGAN's spelling for one pretrained ``latest_net_G.pth``).
"""

import os

from tqdm import tqdm

from data import create_dataset
from options.test_options import TestOptions
from translator import Translator
from util.errors import run_cli
from util.html import HTML
from util.image_io import save_image


def main() -> None:
    # Options, data, model.
    opt = TestOptions().parse()
    dataset = create_dataset(opt)
    model = Translator.from_options(opt).model
    if opt.eval:
        model.eval()
    web_dir = os.path.join(opt.results_dir, opt.name, f"{opt.phase}_{opt.epoch}")
    page = HTML(web_dir, f"Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {opt.epoch}")
    limit = opt.num_test if opt.num_test > 0 else len(dataset)

    # Translate and save, one row per input image.
    done = 0
    for batch in tqdm(dataset, total=dataset.num_batches, desc="test", unit="batch"):
        if done >= limit:
            break
        model.set_input(batch)
        model.test()
        visuals = model.get_current_visuals()
        for i, path in enumerate(model.get_image_paths()[: limit - done]):
            name = os.path.splitext(os.path.basename(path))[0]
            links = []
            for label, images in visuals.items():
                link = os.path.join(label, f"{name}.png")
                save_image(images[i], os.path.join(page.get_image_dir(), link), aspect_ratio=opt.aspect_ratio)
                links.append(link)
            page.add_header(name)
            page.add_images(links, list(visuals), links, width=opt.display_winsize)
            done += 1
    page.save()
    index = os.path.join(web_dir, "index.html")
    if done < len(dataset):  # --num_test cut the split: say so (CycleGAN's default of 50 drops images silently)
        print(f"translated {done} of {len(dataset)} images (--num_test 0 for all): {index}")
    else:
        print(f"translated {done} images: {index}")


if __name__ == "__main__":
    run_cli(main)
