"""Plain-language "what am I looking at" texts for every panel of the app, with the equations behind each picture.

They are written for a classroom: one short paragraph a student can read aloud, then the formula for those who want
it, then what to look for. The texts are Markdown with ``$$ ... $$`` display maths, which ``gr.Markdown`` renders.
"""

from __future__ import annotations

from cbam_viz.vocab import CAM_METHODS

PANELS: dict[str, str] = {
    "overview": (
        "Three image classifiers look at the same picture. They share one skeleton, **ResNet-50** "
        "(4 stages of 3, 4, 6 and 3 bottleneck blocks), and differ only in the *attention* module inside each "
        "block:\n\n"
        "* **ResNet-50**: no attention module.\n"
        "* **SE-ResNet-50** (Squeeze-and-Excitation): each block learns *which channels* (feature detectors) to "
        "turn up or down.\n"
        "* **CBAM-ResNet-50** (Convolutional Block Attention Module): each block learns *which channels* and then "
        "*where in the image* to turn features up or down.\n\n"
        "Each column is one model. Read a column from top to bottom: what it predicts, where the prediction came "
        "from (Grad-CAM), and what its attention modules did on the way."
    ),
    "top5": (
        "The model's five most likely classes and its confidence in each. The numbers come from the **softmax** of "
        "the last layer's scores $z$:\n\n"
        "$$p_c = \\frac{e^{z_c}}{\\sum_j e^{z_j}}$$\n\n"
        "They add up to 1 over all classes, so a bar of 0.9 means the model puts 90 % of its belief on that class. "
        "A confident model is not necessarily a correct one."
    ),
    "gradcam": (
        "**Grad-CAM** colours the parts of the image that pushed the score of the chosen class up. It takes the "
        "feature maps $A^k$ of one stage (the *stage* control), asks how much the class score $y^c$ changes when each "
        "feature map changes (the gradient), and averages that over the map to get one weight per channel:\n\n"
        "$$\\alpha_k^c = \\frac{1}{Z} \\sum_{i,j} \\frac{\\partial y^c}{\\partial A^k_{ij}}$$\n\n"
        "$$L^c_{\\text{Grad-CAM}} = \\mathrm{ReLU}\\Big(\\sum_k \\alpha_k^c A^k\\Big)$$\n\n"
        "Warm colours = evidence *for* the class. The map is coarse (stage 4 is 7x7 for a 224-pixel input, 6x6 for "
        "the 96-pixel demo models) and is stretched over the image, so read it as *roughly where*, not as an "
        "outline. Grey areas are parts of the photo the model never saw (outside its crop). The title gives the "
        "probability of the explained class."
    ),
    "spatial": (
        "**CBAM's spatial attention** says *where* each block looks. After the channel step, the block squeezes its "
        "features $F'$ along the channels twice (the maximum and the mean at every pixel), stacks the two maps and "
        "runs one 7x7 convolution over them:\n\n"
        "$$M_s(F') = \\sigma\\big(f^{7\\times 7}([\\mathrm{MaxPool}_c(F');\\ \\mathrm{AvgPool}_c(F')])\\big)"
        "\\qquad F'' = M_s(F') \\otimes F'$$\n\n"
        "Each value is between 0 (switch this place off) and 1 (keep it). One map per stage is shown (its last "
        "block); stage 1 sees fine detail, stage 4 sees whole objects. ResNet-50 and SE-ResNet-50 have no spatial "
        "attention, so their columns stay empty here."
    ),
    "channel": (
        "**Channel attention** says *which feature detectors* each block turns up (near 1) or down (near 0). In the "
        "plot each row is one block of the stage and each column one channel, sorted so the channels the stage "
        "keeps most are on the left; the colour is the gate value. The curve below is the stage's mean gate per "
        "channel with a band of one standard deviation across blocks. A uniform colour means the block treats all "
        "channels alike; stripes mean it is choosing.\n\n"
        "SE squeezes each channel to its average and runs a small two-layer network:\n\n"
        "$$s = \\sigma\\big(W_2\\, \\delta(W_1\\, \\mathrm{AvgPool}(F))\\big) \\qquad F' = s \\otimes F$$\n\n"
        "CBAM uses the average *and* the maximum of each channel through one shared network:\n\n"
        "$$M_c(F) = \\sigma\\big(\\mathrm{MLP}(\\mathrm{AvgPool}(F)) + \\mathrm{MLP}(\\mathrm{MaxPool}(F))\\big)"
        "\\qquad F' = M_c(F) \\otimes F$$\n\n"
        "$\\sigma$ is the sigmoid and $\\delta$ the ReLU. Plain ResNet-50 has no channel attention."
    ),
    "blocks": (
        "Every bottleneck block of the chosen stage, one by one: the channel attention (SE, CBAM) and the spatial "
        "attention (CBAM) each block computed. Early blocks react to edges and colours, late blocks to object parts. "
        "Pick a stage to compare the three models block by block at the same depth."
    ),
    "agreement": (
        "How much two models agree on *where* the evidence is. Both Grad-CAM maps are put on the same grid, then:\n\n"
        "* **CAM correlation**: the Pearson correlation of the two maps, from -1 (opposite) through 0 (unrelated) "
        "to 1 (same pattern):\n\n"
        "$$r = \\frac{\\sum_i (a_i - \\bar a)(b_i - \\bar b)}{\\sqrt{\\sum_i (a_i - \\bar a)^2}"
        "\\sqrt{\\sum_i (b_i - \\bar b)^2}}$$\n\n"
        "* **Top-20 % IoU**: keep the hottest 20 % of pixels of each map; the overlap divided by the union, from 0 "
        "(no overlap) to 1 (identical):\n\n"
        "$$\\mathrm{IoU} = \\frac{|A \\cap B|}{|A \\cup B|}$$\n\n"
        "For CBAM, **CAM vs spatial attention** correlates its Grad-CAM map with its own spatial attention at the "
        "same stage: does the place it *attends to* match the place its *decision* came from?"
    ),
    "numbers": (
        "Each model's own numbers. **Probability of the explained class**: the softmax value above. **CAM vs own "
        "spatial attention** (CBAM only): the correlation and top-20 % overlap between CBAM's Grad-CAM and the "
        "spatial attention of the last block of the same stage; high values mean the model attends where its "
        "decision comes from. The **faithfulness** lines appear when *Measure faithfulness* is ticked (see below)."
    ),
    "faithfulness": (
        "Is the heatmap *faithful*, that is, does the model really rely on the hot pixels? The test hides pixels and "
        "watches the class probability. Hiding the *most* important pixels first (MoRF) should make the "
        "probability drop fast; hiding the *least* important first (LeRF) should barely change it. This is ROAD "
        "(RemOve And Debias, from the grad-cam library), which fills the hidden pixels from their neighbours so "
        "the model is not fooled by grey holes. The numbers are changes in probability, averaged over hiding 20, "
        "40, 60 and 80 % of the pixels:\n\n"
        "$$\\text{ROAD} = \\tfrac{1}{2}\\,(\\Delta p_{\\text{LeRF}} - \\Delta p_{\\text{MoRF}})$$\n\n"
        "so a faithful map has a strongly negative MoRF, a LeRF near 0 and a large positive ROAD score. They cost "
        "extra forward passes, so they are off unless you tick *Measure faithfulness*."
    ),
    "view": (
        "**Whole image** resizes the entire photo, keeping its aspect ratio, so that its shorter side is the model's "
        "input size: nothing is cut off. **Centre "
        "crop** does what the models were evaluated with (shorter side resized, then the middle square kept), which "
        "can score higher but ignores the borders; those borders are greyed out on every map."
    ),
    "display": (
        "Display settings change only how the maps are painted, so they redraw at once without running the models "
        "again. **Shared colour scale** paints every model's Grad-CAM with one scale, so a brighter map really means "
        "a stronger signal; unticked, each map is stretched to its own range (Grad-CAM's usual habit), which shows "
        "each map's shape but hides how strong it is."
    ),
    "gate": (
        "An attention gate is a small calculator inside each block. It reads the block's feature maps $F$ (one map "
        "per channel, each a feature detector) and answers two questions with numbers between 0 and 1:\n\n"
        "* **What?** (the *channel* gate, SE and CBAM): how much each feature detector matters for this picture. "
        "It squeezes each channel's map to one number, passes those numbers through a small network (the MLP) "
        "and squashes the result into 0..1 with the sigmoid $\\sigma$.\n"
        "* **Where?** (the *spatial* gate, CBAM only): which places in the picture matter. It squeezes the channels "
        "at each place into two numbers (the strongest and the average response), slides a 7x7 filter over those "
        "two maps, normalises (BatchNorm) and squashes with $\\sigma$.\n\n"
        "$$M_c = \\sigma\\big(\\mathrm{MLP}(\\mathrm{AvgPool}(F)) + \\mathrm{MLP}(\\mathrm{MaxPool}(F))\\big)"
        "\\qquad M_s = \\sigma\\big(\\mathrm{BN}(f^{7\\times7}([\\max_c F'; \\mathrm{mean}_c F']))\\big)$$\n\n"
        "**Why max-pooling as well as average-pooling?** The average says how active a detector is over the whole "
        "picture; the maximum says whether it fired strongly *anywhere*. A small object lights up a few places only: "
        "its average stays low, but its maximum stands out. CBAM's authors found that using both works better than "
        "either alone; SE uses the average only.\n\n"
        "Every strip below is this picture's real numbers, channels sorted once by the final gate value $M_c$ "
        "(strongest on the left) and kept in that order, so you can follow one channel from its pooled values to "
        "its gate. The equations fill in one channel (type its number) and the most attended place."
    ),
    "live": (
        "Hold something up to the webcam, turn it, cover half of it: every frame goes through the chosen models "
        "(the models ticked above) and each one's Grad-CAM, and CBAM's spatial attention of the chosen stage, are "
        "painted over it as it comes. The line under the pictures gives the frame rate and, per model, its best "
        "guess and where its map is hottest. When the models fall behind, old frames are skipped, never queued, "
        "so what you see is always recent. **Freeze** sends the current frame to the full analysis below. With the "
        "demo models, show the camera a drawn shape (circle, star, arrow, ...): they know 10 shapes only."
    ),
    "trust": (
        "A heat map is only evidence if it depends on the model and on the class it explains. Three checks, each "
        "run when you ask for it: **randomise the model** (does the map change?), **deletion and insertion** (do "
        "the hot pixels really carry the prediction?) and the **pointing game** (does the map land on the object "
        "you mark?). The paper's claim that CBAM's Grad-CAM covers the object better is only as good as these."
    ),
    "sanity": (
        "Adebayo et al. (2018) asked: does the map still look the same when the model is destroyed? A copy of each "
        "model gets random weights from the top down (first the classifier `fc`, then stage 4, 3, ...; the model "
        "you use is never touched), and after each step the CAM is computed again. Each tile gives the **rank "
        "correlation** $\\rho$ (Spearman) and **SSIM** with the trained model's map.\n\n"
        "**Passing:** the maps fall apart and $\\rho$ drops towards 0 as more layers are random: the map depended "
        "on what the model learned. **Failing:** the map keeps its shape with random weights: it shows the picture's "
        "edges, not the model's reasons. Then comes the CAM for a random *other class*: a map that explains a class "
        "should differ for another one (EigenCAM is the same for every class by design). The last tiles randomise one "
        "layer at a time, the rest trained: the layer whose randomisation changes the map most is the one it rests on."
    ),
    "curves": (
        "Petsiuk et al. (2018): if the map is right, the pixels it ranks highest carry the prediction. **Deletion** "
        "blurs away the pixels in the map's order, 5 % at a time: the probability of the explained class should "
        "fall fast, so a **low area** under the curve is good. **Insertion** starts from a blurred picture and "
        "reveals the pixels in the same order: the probability should rise fast, so a **high area** is good. The "
        "dashed lines use a random order: a map worth anything beats them."
    ),
    "pointing": (
        "Mark the object: click two opposite corners of a box on the picture (or type the box). For each model: does "
        "the map's hottest point fall inside (**peak inside?**), and which share of the map's total lies inside? "
        "Compare that share with the box's own share of the picture: a map that ignores the object would get about "
        "that much. For CBAM the same is asked of each stage's spatial attention map. For the example shapes the "
        "true outline of the object is known and used without drawing."
    ),
    "intervene": (
        "Does the attention matter for *this* prediction? Switch some gates off and run the picture again: the "
        "model is the same, only the chosen gates are replaced.\n\n"
        "* **one**: the gate lets everything through ($M_c = 1$ or $M_s = 1$), as if the module were not there.\n"
        "* **mean**: the gate's output is replaced by its own average, which keeps the overall scale but removes "
        "the preferences.\n"
        "* **shuffle**: the channel weights are handed to the wrong channels (a fixed shuffle).\n"
        "* **keep-top-k**: only the $k$ strongest channels pass; the rest are set to 0.\n\n"
        "Then compare the top-5, the change of the explained class's probability ($\\Delta p$; negative: the "
        "model needed those gates) and the Grad-CAM before and after on one colour scale. **Each stage, one click** "
        "switches off each stage's channel gates, then its spatial gates, one stage at a time, and lists "
        "$\\Delta p$ for each: a class sees at once which stage's attention this prediction depends on. The SENet "
        "paper found late-stage channel gates close to 1 for most pictures; here you can test that on yours."
    ),
}


WEIGHTS_SOURCES = (
    "**The ImageNet weights** (the paper's three models) are published by torchvision (ResNet-50), by Hu et al. "
    "via Cadene's converter (SE-ResNet-50; re-hosted on GitHub and Hugging Face by timm) and by Woo et al. on Google "
    "Drive (CBAM-ResNet-50). `python -m cbam_viz weights download paper` fetches and checks all three; "
    "`python -m cbam_viz weights list` names the page of each file for a download by hand."
)


def weights_sources() -> str:
    """Where the ImageNet weights come from, shown while the demo set answers."""
    return WEIGHTS_SOURCES


def explanation(panel: str) -> str:
    """The Markdown text for one panel; an unknown name is a programming error, so it raises KeyError."""
    return PANELS[panel]


def method_note(method: str) -> str:
    """One line on the chosen CAM method, shown under the Grad-CAM row so students know what changed."""
    known = CAM_METHODS.get(method)
    return known.note if known else f"{method}: a class activation map method from the grad-cam library."
